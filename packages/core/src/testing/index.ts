export { createMemoryLogger, type LogRecord } from './memory-logger.js';
