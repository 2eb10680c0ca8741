// The ingest benchmark's baseline SP: the same built main.js, config and
// processes as the pair it is compared with, but every node is created with
// `createSpNode(options, { unsafeSkipAdmission: true })`, so the per-batch
// trust checks (BatchAdmission) are skipped. That option is a second argument
// of createSpNode only, never a config key or a FAULTLINE_* variable:
// main.js cannot pass it. This file reaches it from outside: loaded with
// `node --import` (ingest.bench.mjs puts it into NODE_OPTIONS of the baseline
// pair's processes only), it registers a resolve hook that hands main.js this
// module in place of its `./node.js`. Whoever can set NODE_OPTIONS of a
// process can load any code into it anyway; nothing here ships in a package.
import { register } from 'node:module';
import { createSpNode as createCheckedSpNode } from '../../packages/stream-processor/dist/node.js';

export * from '../../packages/stream-processor/dist/node.js';

/** main.js's createSpNode: the real one, admission skipped. */
export function createSpNode(options) {
  return createCheckedSpNode(options, { unsafeSkipAdmission: true });
}

register('./unchecked-sp-hooks.mjs', import.meta.url);
