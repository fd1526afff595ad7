export { FileRegistry, type FileRegistryOptions } from './registry.js';
export {
  DEFAULT_FILE_LIMITS,
  parseResourceText,
  splitPath,
  type FileLimits,
  type ParseOptions,
  type ParsedDocument,
  type ParsedFile,
} from './parse.js';
export { listResourceFiles, scanResourceFiles, isHiddenName, RESOURCE_FILE, type ScannedFile } from './scan.js';
