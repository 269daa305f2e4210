package image

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// CachedBinaries resolves a version request ("1.37", "1.37.2") against the
// binary cache alone: an image build never downloads or builds Kubernetes.
func CachedBinaries(request, cacheDir string) (k8sdist.Version, k8sdist.Binaries, error) {
	if _, _, err := k8sdist.ParseVersion(request); err != nil {
		return k8sdist.Version{}, k8sdist.Binaries{}, err
	}
	cached, err := k8sdist.Source{CacheDir: cacheDir}.Cached()
	if err != nil {
		return k8sdist.Version{}, k8sdist.Binaries{}, err
	}
	dir := filepath.Join(cacheDir, "k8s")
	v, err := k8sdist.ResolveIn(request, cached)
	if err != nil {
		held := "none"
		if len(cached) > 0 {
			var list []string
			for _, c := range cached {
				list = append(list, c.String())
			}
			held = strings.Join(list, ", ")
		}
		return v, k8sdist.Binaries{}, fmt.Errorf("Kubernetes %s: its binaries are not in the cache %s (cached: %s); run `vmatrix versions pull %s` first",
			request, dir, held, request)
	}
	d := filepath.Join(dir, v.String())
	return v, k8sdist.Binaries{APIServer: filepath.Join(d, "kube-apiserver"), ControllerManager: filepath.Join(d, "kube-controller-manager")}, nil
}

// BuildVMatrix builds the vmatrix of the module in the working directory as
// make image does: without cgo (kine then uses its pure-Go SQLite driver,
// and the binary is static), without paths or debug information. For tests.
func BuildVMatrix(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "github.com/vmatrix/vmatrix/cmd/vmatrix")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building vmatrix: %w\n%s", err, b)
	}
	return nil
}

// WriteArchive writes img as an OCI image layout in a tar (what `docker
// save` writes since Docker 25 and `skopeo copy oci-archive:` reads), with
// the Docker manifest.json besides for older loaders. ref names the image
// inside. The archive is reproducible too: sorted entries, fixed times.
func WriteArchive(w io.Writer, img v1.Image, ref string) error {
	r, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	configName, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}

	index, _ := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1, Digest: digest, Size: int64(len(rawManifest)),
			Annotations: map[string]string{
				"org.opencontainers.image.ref.name": r.TagStr(),
				"io.containerd.image.name":          r.Name(),
			},
		}},
	})
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	docker := []map[string]any{{"Config": blob(configName), "RepoTags": []string{r.Name()}, "Layers": []string{}}}
	files := map[string]func() (io.ReadCloser, int64, error){
		"oci-layout":     bytesFile([]byte(`{"imageLayoutVersion":"1.0.0"}`)),
		"index.json":     bytesFile(index),
		blob(digest):     bytesFile(rawManifest),
		blob(configName): bytesFile(rawConfig),
		"manifest.json":  nil, // below, once the layers are listed
		"blobs/":         nil,
		"blobs/sha256/":  nil,
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return err
		}
		docker[0]["Layers"] = append(docker[0]["Layers"].([]string), blob(h))
		files[blob(h)] = func() (io.ReadCloser, int64, error) {
			size, err := l.Size()
			if err != nil {
				return nil, 0, err
			}
			rc, err := l.Compressed()
			return rc, size, err
		}
	}
	dockerManifest, _ := json.Marshal(docker)
	files["manifest.json"] = bytesFile(dockerManifest)

	tw := tar.NewWriter(w)
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	}) {
		h := &tar.Header{Name: n, Mode: 0o644, ModTime: cfg.Created.Time, Format: tar.FormatPAX}
		if strings.HasSuffix(n, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		rc, size, err := files[n]()
		if err != nil {
			return err
		}
		h.Typeflag, h.Size = tar.TypeReg, size
		if err := tw.WriteHeader(h); err != nil {
			rc.Close()
			return err
		}
		_, err = io.Copy(tw, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// WriteFile writes the archive to a temporary file next to path and renames
// it: an interrupted build leaves no half archive under the final name.
func WriteFile(path string, img v1.Image, ref string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	bw := bufio.NewWriterSize(f, 1<<20)
	err = WriteArchive(bw, img, ref)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func bytesFile(b []byte) func() (io.ReadCloser, int64, error) {
	return func() (io.ReadCloser, int64, error) {
		return io.NopCloser(strings.NewReader(string(b))), int64(len(b)), nil
	}
}

// archiveNames are the entries ReadArchive takes from an archive; it skips
// any other, so a hostile archive cannot write outside its folder.
var archiveNames = regexp.MustCompile(`^(oci-layout|index\.json|blobs/sha256/[0-9a-f]{64})$`)

// ReadArchive reads an archive of WriteArchive (or any OCI layout tar of one
// image), unpacked into a temporary folder that cleanup removes. ref is the
// name the archive gives the image, "" if none.
func ReadArchive(file string) (img v1.Image, ref string, cleanup func(), err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, "", nil, err
	}
	defer f.Close()
	dir, err := os.MkdirTemp("", "vmatrix-image-")
	if err != nil {
		return nil, "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	fail := func(err error) (v1.Image, string, func(), error) {
		cleanup()
		return nil, "", nil, fmt.Errorf("image archive %s: %w", file, err)
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
		if h.Typeflag != tar.TypeReg || !archiveNames.MatchString(h.Name) {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fail(err)
		}
		out, err := os.Create(dst)
		if err != nil {
			return fail(err)
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return fail(fmt.Errorf("not an OCI image archive: %w", err))
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return fail(err)
	}
	if len(im.Manifests) != 1 {
		return fail(fmt.Errorf("%d images in it, want 1", len(im.Manifests)))
	}
	img, err = idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return fail(err)
	}
	return img, im.Manifests[0].Annotations["io.containerd.image.name"], cleanup, nil
}

// Push pushes the image of an archive to ref (a registry the user names;
// credentials as docker login keeps them), and returns the pushed digest,
// the same as the archive's.
func Push(ctx context.Context, file, ref string, insecure bool) (v1.Hash, error) {
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure) // plain HTTP
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	img, _, cleanup, err := ReadArchive(file)
	if err != nil {
		return v1.Hash{}, err
	}
	defer cleanup()
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing to %s: %w", r, err)
	}
	return img.Digest()
}

// SourceDateEpoch is $SOURCE_DATE_EPOCH as a time, the zero time if unset
// (https://reproducible-builds.org/specs/source-date-epoch/).
func SourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Time{}, nil
	}
	var sec int64
	if _, err := fmt.Sscan(s, &sec); err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
	}
	return time.Unix(sec, 0), nil
}
