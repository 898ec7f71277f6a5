# syntax=docker/dockerfile:1
# pushpool's image: Node 24, production dependencies only, run as a non-root user with plain
# `node` as PID 1 so that Cloud Run's SIGTERM reaches the server (it drains within 10 s).
# test/production/dockerfile.test.ts replays this file's build and starts the result: keep to the
# instructions it knows (FROM, WORKDIR, COPY, RUN, ENV, USER, EXPOSE, CMD).

# Build stage: bundle the service and write its V8 code caches (scripts/build.ts, which `npm run
# build` runs for `npm start` too), then drop the dev dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /app
# The lockfile first, so the dependency layer stays cached while only the source changes.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# openapi.yaml too: the build starts the app, to compile its routes' schemas and to train the
# server script's code cache (scripts/code-cache.ts: a dispatch and a Cloud Tasks timer against a
# Prefect stand-in and the emulator from src/, all on loopback).
COPY tsconfig.json openapi.yaml ./
COPY scripts/build.ts scripts/compile-cache.ts scripts/code-cache.ts scripts/code-cache-peers.ts scripts/protos-subset.ts scripts/precompile-schemas.ts ./scripts/
COPY src ./src
# Node keeps the CLI's compile cache per user id: it is written as uid 1000, the `node` user of the
# official Node images, which the runtime stage runs as (USER node below). The server script's code
# cache is a plain file, readable by any user.
RUN node scripts/build.ts --cache-uid 1000 --cache-gid 1000 && npm prune --omit=dev --no-audit --no-fund

# Runtime stage: no compiler, no sources, no npm invocation. The files stay owned by root, so the
# server cannot rewrite its own code or its code caches.
FROM node:24-bookworm-slim
ENV NODE_ENV=production
# A young generation of 2 MB semi-spaces rather than V8's 16 MB: measured on the compiled server
# (4 starts each, 200-run bursts), RSS idle after the first launch fell from ~137 to ~116 MB and the
# burst's peak from ~236 to ~177 MB, for a burst CPU cost within the noise (+3-8 %). And an old
# generation capped at 128 MB: V8 otherwise lets garbage grow to ~90 MB of old space during a burst
# of 64 drives at once and keeps it (and the pages) while idle; capped, it collects far sooner (the
# heap stayed at 27-45 MB through such a burst with a 96 MB cap). Live data at 64 in flight is
# ~25 MB, so the cap leaves 5x room. Measured side by side (bench/memory.ts, 2 bursts of 1,000 at 64
# at once): RSS 10 s after a burst fell from ~220 to ~150-160 MB with no loss of pace. Raising
# PUSHPOOL_MAX_IN_FLIGHT well past 64 wants a larger cap (docs/deploy.md).
ENV NODE_OPTIONS="--max-semi-space-size=2 --max-old-space-size=128"
WORKDIR /app
# The bundle opens a few package files by path at run time (scripts/build.ts says which), so the
# production node_modules come along.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# openapi.yaml is served at GET /openapi.yaml (the routes' schemas are compiled in, from
# src/openapi-schemas.ts, which is generated from it).
COPY package.json openapi.yaml ./
USER node
# Cloud Run sets PORT (8080 by default); pushpool listens on 0.0.0.0 when K_SERVICE is set.
EXPOSE 8080
CMD ["node", "dist/server.js"]
