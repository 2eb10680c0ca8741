export { freePort, type StartPostgresOptions, startPostgres, type TestPostgres } from './postgres.js';
