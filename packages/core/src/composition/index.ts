// Curated exports of group/pipeline (re-exported by src/index.ts).
export {}
