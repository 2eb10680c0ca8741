// Module hooks of unchecked-sp.mjs (they run on Node's hooks thread): the SP
// main's import of its own `./node.js` resolves to unchecked-sp.mjs instead.
const MAIN = '/packages/stream-processor/dist/main.js';
const NODE = '/packages/stream-processor/dist/node.js';
const UNCHECKED = new URL('./unchecked-sp.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  if (resolved.url.endsWith(NODE) && context.parentURL?.endsWith(MAIN)) return { url: UNCHECKED, shortCircuit: true };
  return resolved;
}
