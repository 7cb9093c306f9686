# The kvd image: FROM scratch, holding static kvd and kvctl binaries built
# beforehand (SPEC.md: they build with CGO_ENABLED=0), so building it pulls
# no image. From the repository root:
#
#   CGO_ENABLED=0 go build -o kvd ./cmd/kvd
#   CGO_ENABLED=0 go build -o kvctl ./cmd/kvctl
#   docker build -t quorumkv/kvd .
#
# kvd listens on every interface of the container. Off loopback it serves
# only with TLS (--certs-dir) or with --insecure and a cluster secret
# (--cluster-secret-file), so `docker run quorumkv/kvd` alone stops with an
# error saying so: choose one and add it, with --node-id and --advertise,
# after the image name. docs/install.md runs it alone and as the 3-node
# cluster of compose.yaml.
FROM scratch
COPY kvd kvctl /
VOLUME /data
# 7070: client API, peer traffic and HTTP (metrics, health, status page);
# 7946: gossip (memberlist), TCP and UDP.
EXPOSE 7070/tcp 7946/tcp 7946/udp
ENTRYPOINT ["/kvd", "--data-dir", "/data", "--listen", "0.0.0.0:7070", "--gossip", "0.0.0.0:7946"]
