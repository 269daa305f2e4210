package k8sdist

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// This machine cannot reach dl.k8s.io, so these tests serve the release
// layout from a local HTTP server standing in for it.

// offline points the release download at a closed port, as on a machine
// without internet, so a test does not depend on dl.k8s.io.
func offline(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	setReleaseURL(t, url)
}

func setReleaseURL(t *testing.T, url string) {
	old := releaseURL
	releaseURL = url
	t.Cleanup(func() { releaseURL = old })
}

// releaseServer serves a fake release v1.99.0 whose binaries are shell
// scripts; corrupt makes the kube-scheduler checksum wrong.
func releaseServer(t *testing.T, corrupt bool) (files map[string][]byte, requests *atomic.Int32) {
	files = map[string][]byte{}
	requests = new(atomic.Int32)
	mux := http.NewServeMux()
	for _, c := range components {
		body := []byte("#!/bin/sh\necho " + c.name + " v1.99.0\n")
		files[c.name] = body
		sum := sha256.Sum256(body)
		if corrupt && c.name == "kube-scheduler" {
			sum[0]++
		}
		path := fmt.Sprintf("/v1.99.0/bin/%s/%s/%s", runtime.GOOS, runtime.GOARCH, c.name)
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			w.Write(body)
		})
		mux.HandleFunc(path+".sha256", func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			fmt.Fprint(w, hex.EncodeToString(sum[:]))
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	setReleaseURL(t, srv.URL)
	return files, requests
}

func TestKubernetesDownload(t *testing.T) {
	unsetOverrides(t)
	files, requests := releaseServer(t, false)
	cache := t.TempDir()
	var log bytes.Buffer
	s := Source{CacheDir: cache, Log: &log}
	b, err := s.Kubernetes(t.Context(), Version{1, 99, 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range components {
		p := *b.field(c.name)
		if want := filepath.Join(cache, "k8s", "v1.99.0", c.name); p != want {
			t.Errorf("%s at %q, want %q", c.name, p, want)
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, files[c.name]) || !isExecutable(p) {
			t.Errorf("%s: content %q, err %v, executable %v", c.name, got, err, isExecutable(p))
		}
	}
	if strings.Contains(log.String(), "building") {
		t.Errorf("built although the download worked:\n%s", log.String())
	}

	// From now on, the cache answers.
	n := requests.Load()
	if b2, err := s.Kubernetes(t.Context(), Version{1, 99, 0}); err != nil || b2 != b {
		t.Errorf("second call = %+v, %v", b2, err)
	}
	if requests.Load() != n {
		t.Errorf("second call made %d requests, want none", requests.Load()-n)
	}
	if list, _ := s.Cached(); len(list) != 1 || list[0] != (Version{1, 99, 0}) {
		t.Errorf("Cached = %v", list)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "k8s", "v1.99.0"))
	if len(entries) != len(components) {
		t.Errorf("leftovers in the cache: %v", entries)
	}
}

func TestKubernetesDownloadChecksumMismatch(t *testing.T) {
	unsetOverrides(t)
	releaseServer(t, true)
	cache := t.TempDir()
	var log bytes.Buffer
	_, err := Source{CacheDir: cache, Log: &log}.Kubernetes(t.Context(), Version{1, 99, 0})
	var sumErr *checksumError
	if !errors.As(err, &sumErr) {
		t.Fatalf("error = %v, want a checksum error", err)
	}
	if !strings.Contains(err.Error(), "kube-scheduler") {
		t.Errorf("error %q does not name the binary", err)
	}
	if strings.Contains(log.String(), "building") {
		t.Errorf("a corrupt download fell back to a build:\n%s", log.String())
	}
	if _, err := os.Stat(filepath.Join(cache, "k8s", "v1.99.0", "kube-scheduler")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the corrupt binary is in the cache: %v", err)
	}
}

func TestDownloadFailsFast(t *testing.T) {
	// A server that accepts connections and never answers: the worst case
	// of a network that swallows packets.
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stall:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stall) })
	setReleaseURL(t, srv.URL)

	start := time.Now()
	err := Source{CacheDir: t.TempDir()}.download(t.Context(), Version{1, 99, 0}, t.TempDir(), []string{"kube-apiserver"})
	d := time.Since(start)
	if err == nil {
		t.Fatal("download from a silent server succeeded")
	}
	// It gives up by itself, on its first-request timeout, rather than wait
	// for the test's deadline: the bound only tells that from a hang.
	if d > 10*firstRequestTimeout {
		t.Errorf("download gave up after %v, want about %v", d, firstRequestTimeout)
	}
	t.Logf("gave up after %v: %v", d.Round(time.Millisecond), err)

	// Without a network the answer is immediate.
	offline(t)
	start = time.Now()
	if err := (Source{}).download(t.Context(), Version{1, 99, 0}, t.TempDir(), []string{"kube-apiserver"}); err == nil {
		t.Fatal("download from a closed port succeeded")
	}
	// Refused at once, never waiting out the silent server's timeout.
	if d := time.Since(start); d >= firstRequestTimeout {
		t.Errorf("download from a closed port took %v", d)
	}
}
