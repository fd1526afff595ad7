export { TrellisAdapter, type TrellisAdapterOptions } from './adapter.js';
export { convertTrellisExport, type TrellisConversion, type TrellisExportHeader, type TrellisExportOptions } from './convert.js';
