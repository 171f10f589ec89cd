# The image for `docker plugin create` (its rootfs) or for running netvol in a container
# with --privileged --network host and /run/docker/plugins, /var/lib/netvol and the base
# directory bind-mounted (rshared). Needs a registry for node:20-bookworm-slim.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nfs-common cifs-utils util-linux \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/docker/plugins /var/lib/netvol /var/lib/docker-volumes/netshare
WORKDIR /opt/netvol
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY packaging/plugin/netvol-plugin /usr/local/bin/netvol-plugin
ENTRYPOINT ["/usr/local/bin/netvol-plugin"]
