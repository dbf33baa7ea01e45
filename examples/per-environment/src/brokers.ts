// Make the broker adapters known to createBroker() and getBroker() by URL scheme.
//
// getBroker() can find an installed adapter by itself (it require()s @tq/rabbitmq, @tq/redis or
// @tq/sqs by name), but that lookup fails where packages are not plain files on disk: bundled
// apps (esbuild, webpack), and test runners that load TypeScript sources (vitest). Registering
// the adapters you install, once, before any actor is declared, works everywhere.
import { registerBroker } from '@tq/core'
import { brokerPlugin as rabbitmq } from '@tq/rabbitmq'
import { brokerPlugin as redis } from '@tq/redis'
import { brokerPlugin as sqs } from '@tq/sqs'

for (const plugin of [rabbitmq, redis, sqs]) registerBroker(plugin)
