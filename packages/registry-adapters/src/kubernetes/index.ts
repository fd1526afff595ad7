export { KubernetesAdapter, type KubernetesAdapterOptions } from './adapter.js';
export { KubeHttpClient, KubeApiError, inClusterConnection, loadKubeconfig, SERVICE_ACCOUNT_DIR, type KubeConnection } from './client.js';
export {
  convertKubernetesService,
  kubeHostname,
  kubePortName,
  kubePortProtocol,
  SERVICE_NAME_LABEL,
  type KubeEndpoint,
  type KubeEndpointSlice,
  type KubeLookup,
  type KubeNode,
  type KubeObject,
  type KubeObjectMeta,
  type KubePod,
  type KubeService,
  type KubeServicePort,
  type KubernetesConversion,
  type KubernetesConvertOptions,
} from './convert.js';
export { listWatch, type ListWatchHandlers, type ListWatchOptions } from './list-watch.js';
export { TokenReviewer, type TokenReviewResult, type TokenReviewerOptions } from './token-review.js';
export { IstioConfigSource, ISTIO_CRD_PATHS, type IstioConfigSourceOptions } from './istio-config.js';
