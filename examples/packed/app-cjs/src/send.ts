import { add, backend, broker } from './tasks'

async function main(): Promise<void> {
  const message = await add.send(2, 3)
  // getResult() with no backend option finds it through the global broker.
  console.log(`result: ${await message.getResult({ block: true, timeout: 20_000 })}`)
  await broker.close()
  await backend.close()
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
