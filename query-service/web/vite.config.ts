import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// `npm run dev` proxies the API to a running gateway (the run command's, by default), so the
// browser sees one origin as in production.
const gateway = process.env.GATEWAY_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
  plugins: [react()],
  build: { target: 'es2022', sourcemap: false },
  server: { proxy: { '/api': { target: gateway, changeOrigin: false } } },
  test: { include: ['src/**/*.test.ts'], environment: 'node' },
});
