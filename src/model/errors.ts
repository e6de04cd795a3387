/** A model directory that cannot be loaded: missing, unreadable, malformed or inconsistent files. */
export class ModelLoadError extends Error {
  readonly code = 'MODEL_LOAD_FAILED';
}
