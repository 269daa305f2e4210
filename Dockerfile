# The image of the in-cluster mode (charts/vmatrix): vmatrix, whose
# `vmatrix controlplane` is the entrypoint, and the control-plane binaries of
# ONE Kubernetes version. One image per version:
#
#   docker build --build-arg KUBERNETES_VERSION=1.37.2 -t ghcr.io/vmatrix/vmatrix:v1.37.2 .
#
# The binaries come the way vmatrix gets them everywhere else (`vmatrix
# versions pull`: the official release download, checksum verified, else a
# build from the Go module proxy), so the image holds exactly what the local
# mode runs.

FROM golang:1.26-trixie AS build
ARG KUBERNETES_VERSION=1.37.2
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# cgo stays on: kine's SQLite driver needs it.
RUN go build -trimpath -o /out/vmatrix ./cmd/vmatrix
RUN VMATRIX_CACHE_DIR=/cache /out/vmatrix versions pull "${KUBERNETES_VERSION}" && \
    mkdir -p /out/bin && \
    cp /cache/k8s/v${KUBERNETES_VERSION}/kube-apiserver \
       /cache/k8s/v${KUBERNETES_VERSION}/kube-controller-manager \
       /cache/k8s/v${KUBERNETES_VERSION}/kube-scheduler /out/bin/

# The same Debian release as the build stage, for the glibc that cgo linked.
FROM gcr.io/distroless/base-debian13:nonroot
COPY --from=build /out/vmatrix /out/bin/ /usr/local/bin/
# Set, these paths are used as they are: the pod never downloads or builds.
ENV VMATRIX_KUBE_APISERVER=/usr/local/bin/kube-apiserver \
    VMATRIX_KUBE_CONTROLLER_MANAGER=/usr/local/bin/kube-controller-manager \
    VMATRIX_KUBE_SCHEDULER=/usr/local/bin/kube-scheduler
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/vmatrix"]
CMD ["controlplane"]
