// Curated exports of the middleware (owned by the middleware work; re-exported by src/index.ts).
export {}
