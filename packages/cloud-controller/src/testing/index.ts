export { type FakeProcessInit, FakeProcessTable } from './fake-process-table.js';
