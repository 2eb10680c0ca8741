export { type FakeEndpointMode, FakeTransport } from './fake-transport.js';
