# Multi-stage: dependencies are installed in a throwaway stage; the runtime image
# holds only production modules, the sources (Node 24 runs TypeScript directly)
# and the migrations, and runs as the unprivileged `node` user.

FROM node:24-alpine AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional: the image already has Node 24, so the npm-packaged Node is not needed.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund

FROM node:24-alpine
ENV NODE_ENV=production \
    PORT=8002 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
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
CMD ["node", "src/main.ts"]
