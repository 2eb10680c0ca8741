export { FakeChild, type FakeDescendant, FakeProcesses, type FakeStopBehaviour } from './fake-processes.js';
export { FAKE_SUPERVISOR_OPTIONS, superviseFakes } from './supervisor-harness.js';
