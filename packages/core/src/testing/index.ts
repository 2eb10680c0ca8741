export { createMemoryLogger, type LogRecord } from './memory-logger.js';
export { controlsIn, withoutColors } from './terminal-text.js';
