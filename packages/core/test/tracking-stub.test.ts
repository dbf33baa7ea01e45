import { StubTrackingBackend } from '../src/index.ts'
import { trackingBackendConformanceSuite } from '../src/testing/index.ts'

trackingBackendConformanceSuite({ name: 'StubTrackingBackend', createBackend: () => new StubTrackingBackend() })
