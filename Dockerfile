# syntax=docker/dockerfile:1
# Strata: build with the dev toolchain, run with production dependencies only.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS runtime
# MALLOC_MMAP_THRESHOLD_: L1's slabs get mappings of their own, returned when freed, instead of
# leaving holes in glibc's heap (Zipf loadtest peak RSS 10-15 MiB lower; README, Configuration).
ENV NODE_ENV=production \
    STRATA_HOST=0.0.0.0 \
    STRATA_DATA_DIR=/var/lib/strata \
    MALLOC_MMAP_THRESHOLD_=131072
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY proto ./proto
COPY examples ./examples
RUN mkdir -p /var/lib/strata && chown node:node /var/lib/strata
USER node
VOLUME ["/var/lib/strata"]
EXPOSE 6565 6566
HEALTHCHECK --interval=10s --timeout=2s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.STRATA_HTTP_PORT || 6566) + '/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# On 2 vCPUs or fewer add -e NODE_OPTIONS="--v8-pool-size=1 --max-semi-space-size=4"; on a host with more memory
# than the container should take, also --max-old-space-size=<L1 budget in MiB + 256> (README, Configuration).
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
