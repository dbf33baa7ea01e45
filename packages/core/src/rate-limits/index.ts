// Curated exports of rate limiters (re-exported by src/index.ts).
export {}
