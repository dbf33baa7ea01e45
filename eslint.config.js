// @ts-check
import js from '@eslint/js'
import { defineConfig } from 'eslint/config'
import prettier from 'eslint-config-prettier'
import tseslint from 'typescript-eslint'

export default defineConfig(
  {
    // docs/api: the TypeDoc output (pnpm docs:api). examples/packed/app-cjs: a scratch project's
    // sources, type-checked by its own tsc against the packed tarballs (packed.test.ts).
    ignores: [
      '**/dist/**',
      '**/node_modules/**',
      '**/coverage/**',
      '**/.turbo/**',
      '**/*.tsbuildinfo',
      'docs/api/**',
      'examples/packed/app-cjs/**',
    ],
  },
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: {
          // Config files belong to no tsconfig; type-check them with the base options.
          allowDefaultProject: [
            '*.config.ts',
            'vitest.tier.ts',
            'packages/*/vitest.config.ts',
            'examples/*/vitest.config.ts',
            'benchmarks/vitest.config.ts',
          ],
          defaultProject: './tsconfig.base.json',
          // One vitest.config.ts per package and example (about 20 small files); the default cap is 8.
          maximumDefaultProjectFileMatchCount_THIS_WILL_SLOW_DOWN_LINTING: 32,
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      // An async method without await is the normal way to implement a Promise-returning interface.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // No console in library code; the CLI is the one place that talks to a terminal.
    files: ['packages/*/src/**'],
    ignores: ['packages/*/src/cli/**'],
    rules: { 'no-console': 'error' },
  },
  {
    // Tests poke at internals and mocks; the unsafe-any family is noise there.
    files: ['**/test/**', '**/*.test.ts', '**/*.test-d.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  {
    // Plain JS (this file, scripts/) is not in any tsconfig: lint it without type information.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        Buffer: 'readonly',
      },
    },
  },
  prettier,
)
