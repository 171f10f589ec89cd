# The image for `docker plugin create` (its rootfs) or for running netvol in a container
# with --privileged --network host and /run/docker/plugins, /var/lib/netvol and the base
# directory bind-mounted (rshared). Needs node:20-bookworm-slim (a registry, or an imported
# image of that name: npm run test:dockerfile builds this file that way in a VM).
#   DOCKER_BUILDKIT=0 docker build -t netvol .       (BuildKit works too where installed)
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
 && mkdir -p /run/docker/plugins /var/lib/netvol /var/lib/docker-volumes/netshare \
    /var/lib/netvol-csi /data/published /data/netvol
WORKDIR /opt/netvol
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY packaging/plugin/netvol-plugin /usr/local/bin/netvol-plugin
# The CSI plugin's entry point and the early socket both plugins can use (EARLY_SOCKET): the
# same image is the rootfs of either plugin, with plugin-config.json or
# packaging/csi-plugin/config.json beside it.
COPY packaging/csi-plugin/netvol-csi-plugin /usr/local/bin/netvol-csi-plugin
COPY packaging/csi-plugin/socket-early.mjs ./socket-early.mjs
ENTRYPOINT ["/usr/local/bin/netvol-plugin"]
