/* eslint-disable @typescript-eslint/no-require-imports, no-undef -- this file is the CommonJS user's view */
// CommonJS users: require() of tq's ESM works on Node 20.19+.
const { Message, StubBroker } = require('@tq/core')
const m = new Message({ queueName: 'q', actorName: 'a', args: [1] })
console.log(`cjs: ${new StubBroker().constructor.name} ${Message.decode(m.encode()).args[0]}`)
const { PostgresBroker, fromPg } = require('@tq/postgres')
console.log(`cjs: ${PostgresBroker.name} ${fromPg.name}`)
