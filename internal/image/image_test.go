package image_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vmatrix/vmatrix/internal/image"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// newest is the Kubernetes version the image tests build: the chart's
// default, cached by make pull.
const newest = "1.37"

// TestImage builds the image of the newest version twice from the same
// inputs (same digest, same archive bytes), once more with another
// SOURCE_DATE_EPOCH (another digest: the time is really in it), and pushes
// the archive to an in-process registry.
func TestImage(t *testing.T) {
	v, bins, err := image.CachedBinaries(newest, k8sdist.DefaultCacheDir())
	if err != nil {
		t.Skip(err)
	}
	vmatrix := filepath.Join(t.TempDir(), "vmatrix")
	if err := image.BuildVMatrix(t.Context(), vmatrix); err != nil {
		t.Fatal(err)
	}
	opts := image.Options{Version: v, Binaries: bins, VMatrix: vmatrix}
	dir := t.TempDir()
	build := func(o image.Options, file string) (v1.Hash, string) {
		t.Helper()
		start := time.Now()
		img, err := image.Build(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := image.WriteFile(file, img, image.Reference(v)); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(file)
		t.Logf("%s: %s, archive %.1f MB, built in %s", image.Reference(v), d, float64(fi.Size())/1e6, time.Since(start).Round(100*time.Millisecond))
		return d, fileSum(t, file)
	}
	first, firstSum := build(opts, filepath.Join(dir, "a.tar"))
	second, secondSum := build(opts, filepath.Join(dir, "b.tar"))
	if first != second || firstSum != secondSum {
		t.Errorf("two builds of the same inputs differ: digests %s and %s, archives sha256 %s and %s", first, second, firstSum, secondSum)
	}
	later := opts
	later.Created = time.Unix(1700000000, 0)
	if d, _ := build(later, filepath.Join(dir, "c.tar")); d == first {
		t.Errorf("another creation time gave the same digest %s", d)
	}

	t.Run("Archive", func(t *testing.T) {
		img, ref, cleanup, err := image.ReadArchive(filepath.Join(dir, "a.tar"))
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		if d, _ := img.Digest(); d != first || ref != image.Reference(v) {
			t.Errorf("read back: %s %s, want %s %s", ref, d, image.Reference(v), first)
		}
	})

	t.Run("Push", func(t *testing.T) {
		srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		defer srv.Close()
		ref := strings.TrimPrefix(srv.URL, "http://") + "/team/vmatrix:" + image.Tag(v)
		pushed, err := image.Push(context.Background(), filepath.Join(dir, "a.tar"), ref, false)
		if err != nil {
			t.Fatal(err)
		}
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Image(r)
		if err != nil {
			t.Fatal(err)
		}
		d, err := got.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if pushed != first || d != first {
			t.Errorf("pushed %s, registry serves %s, want the built %s", pushed, d, first)
		}
		// The registry has every layer's bytes, not only the manifest.
		layers, err := got.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			h, _, err := v1.SHA256(rc)
			rc.Close()
			want, _ := l.Digest()
			if err != nil || h != want {
				t.Errorf("layer %s from the registry: %v %v", want, h, err)
			}
		}
	})
}

// TestImageBadInput: each mistake gives one line that says what to do.
func TestImageBadInput(t *testing.T) {
	emptyCache := t.TempDir()
	for what, err := range map[string]error{
		"unknown version": third(image.CachedBinaries("1.99", k8sdist.DefaultCacheDir())),
		"bad version":     third(image.CachedBinaries("latest", k8sdist.DefaultCacheDir())),
		"not cached":      third(image.CachedBinaries(newest, emptyCache)),
		"bad ref":         second(image.Push(context.Background(), "x.tar", "Not A Ref!", false)),
		"no archive":      second(image.Push(context.Background(), filepath.Join(emptyCache, "none.tar"), "localhost:1/x:y", false)),
		"not vmatrix":     second(image.Build(image.Options{VMatrix: "/bin/true"})),
		"no binary":       second(image.Build(image.Options{VMatrix: filepath.Join(emptyCache, "vmatrix")})),
	} {
		t.Logf("%s: %v", what, err)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %q, want a one-line error", what, err)
		}
	}
	if _, _, err := image.CachedBinaries(newest, emptyCache); !strings.Contains(fmt.Sprint(err), "vmatrix versions pull 1.37") {
		t.Errorf("an uncached version does not say how to cache it: %v", err)
	}
}

func fileSum(t *testing.T, file string) string {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func second[T any](_ T, err error) error { return err }

func third[T, U any](_ T, _ U, err error) error { return err }
