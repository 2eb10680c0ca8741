export { type FakeProcessInit, FakeProcessTable } from './fake-process-table.js';
export { FakeSocketTable } from './fake-socket-table.js';
