export { ControlError, type ControlFile, callControl, startControl } from './control.js';
export { type LogsOptions, showLogs } from './logs.js';
export { formatStatus, type StackStatus, stackStatus } from './status.js';
export { type ServiceSpec, type ServiceState, Supervisor, type SupervisorOptions } from './supervisor.js';
