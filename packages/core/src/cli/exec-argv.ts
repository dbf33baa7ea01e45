/** Node flags a worker process must not inherit (each would try to open the same inspector port). */
const INSPECTOR_FLAG = /^--(inspect|debug)/

/** Worker processes resolve bare package names with `import.meta.resolve(spec, parent)`. */
const RESOLVE_FLAG = '--experimental-import-meta-resolve'

/** The Node flags for a worker process: this process's, minus inspector flags, plus what the child needs. */
export function childExecArgv(execArgv: readonly string[]): string[] {
  const args = execArgv.filter((a) => !INSPECTOR_FLAG.test(a))
  if (!args.includes(RESOLVE_FLAG) && process.allowedNodeEnvironmentFlags.has(RESOLVE_FLAG)) args.push(RESOLVE_FLAG)
  return args
}
