// Whole-file HTTP(S) downloads for the agent and the CLI (see fetch.ts).
export { fetchFile, type FetchFileOptions, type FetchFileResult } from "./fetch.ts";
export { FetchError, type FetchErrorKind, redactUrl } from "./errors.ts";
export { consoleProgress, formatBytes, formatProgress, type FetchProgress } from "./progress.ts";
export { backoffDelay } from "./backoff.ts";
