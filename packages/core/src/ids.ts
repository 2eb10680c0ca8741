/**
 * The one id pattern of Faultline: members, clusters, partitions, agents, SP
 * nodes and brokers. It lives in core because the configuration (the lowest
 * floor) validates cluster ids; `@faultline/protocol` re-exports it with the
 * rest of the wire vocabulary. No control characters, no separators of the
 * topic or stream ids (`/`, `:`, `+`, `#`), at most 128 characters.
 */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The reason a validator gives for an id that does not match. */
export const ID_PATTERN_DESCRIPTION = 'must be 1–128 letters, digits, ".", "_" or "-", starting with a letter or digit';
