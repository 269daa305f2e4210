// Package image builds the in-cluster image (the chart's control-plane pod)
// without a container engine: the layers are written as tar streams here and
// assembled with go-containerregistry into an OCI image, one per Kubernetes
// version. Same inputs give the same digest: every timestamp is the creation
// time given (epoch 0 by default), entries are sorted, owners and modes fixed.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// Repository is the image's name; the chart's image.repository defaults to
// it, and its image.tag to Tag of its kubernetesVersion.
const Repository = "ghcr.io/vmatrix/vmatrix"

// Tag is the tag of the image of Kubernetes v: "v1.37.2".
func Tag(v k8sdist.Version) string { return v.String() }

// Reference is the image's default name and tag for v.
func Reference(v k8sdist.Version) string { return Repository + ":" + Tag(v) }

// The non-root user the chart's pod runs as (runAsUser, runAsGroup, fsGroup).
const (
	UID = 65532
	GID = 65532
)

// Paths in the image.
const (
	BinDir            = "/usr/local/bin"
	Entrypoint        = BinDir + "/vmatrix"
	APIServer         = BinDir + "/kube-apiserver"
	ControllerManager = BinDir + "/kube-controller-manager"
	CACertificates    = "/etc/ssl/certs/ca-certificates.crt"
)

// Labels of the image, besides the OCI ones.
const (
	LabelKubernetesVersion = "io.vmatrix.kubernetes-version"
	LabelVMatrixVersion    = "io.vmatrix.version"
)

// Options are the inputs of an image.
type Options struct {
	Version  k8sdist.Version
	Binaries k8sdist.Binaries // APIServer and ControllerManager; no scheduler runs in a virtual cluster
	// VMatrix is the vmatrix binary of the entrypoint, best built with
	// CGO_ENABLED=0 (kine then uses its pure-Go SQLite driver).
	VMatrix string
	// CACertificates is the CA bundle to include; "" means the host's
	// /etc/ssl/certs/ca-certificates.crt.
	CACertificates string
	// Created is every timestamp in the image; zero means the Unix epoch.
	Created time.Time
}

// Build assembles the image in memory (compressed, about a third of the
// binaries' size). Dynamically linked binaries get the shared libraries they
// name, from this machine: the Kubernetes binaries that vmatrix builds from
// the module proxy link glibc, where the official releases are static.
func Build(opts Options) (v1.Image, error) {
	if opts.Created.IsZero() {
		opts.Created = time.Unix(0, 0)
	}
	opts.Created = opts.Created.UTC()
	if opts.CACertificates == "" {
		opts.CACertificates = CACertificates
	}
	bi, err := buildinfo.ReadFile(opts.VMatrix)
	if err != nil {
		return nil, fmt.Errorf("vmatrix binary %s: %w", opts.VMatrix, err)
	}
	if bi.Path != "github.com/vmatrix/vmatrix/cmd/vmatrix" {
		return nil, fmt.Errorf("%s is not a vmatrix binary (it is %s)", opts.VMatrix, bi.Path)
	}
	bins := map[string]string{Entrypoint: opts.VMatrix, APIServer: opts.Binaries.APIServer, ControllerManager: opts.Binaries.ControllerManager}
	arch, libs, err := sharedLibraries(bins)
	if err != nil {
		return nil, err
	}
	certs, err := os.ReadFile(opts.CACertificates)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}

	base := []entry{
		file("/etc/passwd", 0o644, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
		file("/etc/group", 0o644, "root:x:0:\nnonroot:x:65532:\n"),
		file(CACertificates, 0o644, string(certs)),
		// The chart mounts volumes here; without them (docker run) the
		// image still has a writable /tmp and /data.
		{name: "/tmp", dir: true, mode: 0o1777},
		{name: "/data", dir: true, mode: 0o755, uid: UID, gid: GID},
		{name: "/home/nonroot", dir: true, mode: 0o700, uid: UID, gid: GID},
		{name: "/etc/vmatrix", dir: true, mode: 0o755},
	}
	base = append(base, libs...)
	layers := []struct {
		what    string
		entries []entry
	}{
		{"base: CA certificates, user nonroot (65532), /tmp, /data" + libsNote(libs), base},
		{"kube-apiserver and kube-controller-manager " + opts.Version.String(),
			[]entry{executable(APIServer, opts.Binaries.APIServer), executable(ControllerManager, opts.Binaries.ControllerManager)}},
		{"vmatrix", []entry{executable(Entrypoint, opts.VMatrix)}},
	}

	created := v1.Time{Time: opts.Created}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      created,
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: []string{Entrypoint},
			Cmd:        []string{"controlplane"},
			User:       fmt.Sprintf("%d:%d", UID, GID),
			WorkingDir: "/",
			// Set, these paths are used as they are: the pod never
			// downloads or builds.
			Env: []string{
				"PATH=" + BinDir,
				"VMATRIX_KUBE_APISERVER=" + APIServer,
				"VMATRIX_KUBE_CONTROLLER_MANAGER=" + ControllerManager,
			},
			Labels: map[string]string{
				"org.opencontainers.image.title":       "vmatrix",
				"org.opencontainers.image.description": "vmatrix controlplane: a virtual cluster of Kubernetes " + opts.Version.String() + " in a pod",
				"org.opencontainers.image.version":     Tag(opts.Version),
				"org.opencontainers.image.created":     opts.Created.Format(time.RFC3339),
				LabelKubernetesVersion:                 strings.TrimPrefix(opts.Version.String(), "v"),
				LabelVMatrixVersion:                    bi.Main.Version,
			},
		},
	})
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		layer, err := newLayer(l.entries, opts.Created)
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     layer,
			MediaType: types.OCILayer,
			History:   v1.History{Created: created, CreatedBy: "vmatrix image build", Comment: l.what},
		})
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

func libsNote(libs []entry) string {
	if len(libs) == 0 {
		return ""
	}
	var names []string
	for _, l := range libs {
		names = append(names, path.Base(l.name))
	}
	return ", shared libraries " + strings.Join(names, " ")
}

// entry is one file or folder of a layer: content from data, or from the
// file src on this machine.
type entry struct {
	name     string
	dir      bool
	mode     int64
	uid, gid int
	data     []byte
	src      string
}

func file(name string, mode int64, content string) entry {
	return entry{name: name, mode: mode, data: []byte(content)}
}

func executable(name, src string) entry { return entry{name: name, mode: 0o755, src: src} }

// newLayer writes entries, with their parent folders, as a gzipped tar in
// memory: compressing once here, not on every read of the layer.
func newLayer(entries []entry, created time.Time) (v1.Layer, error) {
	all := map[string]entry{}
	for _, e := range entries {
		all[e.name] = e
		for d := path.Dir(e.name); d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = entry{name: d, dir: true, mode: 0o755}
			}
		}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range all {
			if !yield(n) {
				return
			}
		}
	})
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression) // no name, no mtime in its header
	tw := tar.NewWriter(zw)
	for _, n := range names {
		if err := writeEntry(tw, all[n], created); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

func writeEntry(tw *tar.Writer, e entry, created time.Time) error {
	h := &tar.Header{
		Name: strings.TrimPrefix(e.name, "/"), Mode: e.mode, Uid: e.uid, Gid: e.gid,
		ModTime: created, Format: tar.FormatPAX,
	}
	if e.dir {
		h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		return tw.WriteHeader(h)
	}
	h.Typeflag = tar.TypeReg
	if e.src == "" {
		h.Size = int64(len(e.data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(e.data)
		return err
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", e.src)
	}
	h.Size = fi.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := io.Copy(tw, f)
	if err == nil && n != h.Size {
		err = errors.New("changed while being read")
	}
	if err != nil {
		return fmt.Errorf("%s: %w", e.src, err)
	}
	return nil
}
