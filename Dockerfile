# syntax=docker/dockerfile:1
# Build stage: compile TypeScript with the dev dependencies, then keep production ones only.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Runtime stage: Node 24, no npm at run time, non-root.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json openapi.yaml ./
USER node
# Cloud Run sets PORT; pushpool listens on 0.0.0.0 when K_SERVICE is set and stops within 10 s of SIGTERM.
CMD ["node", "dist/server.js"]
