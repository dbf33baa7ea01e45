import { StubBroker } from '../src/index.ts'
import { adminConformanceSuite } from '../src/testing/index.ts'

adminConformanceSuite({ name: 'StubBroker', createBroker: ({ middleware }) => new StubBroker({ middleware }) })
