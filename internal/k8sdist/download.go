package k8sdist

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// releaseURL is where official release binaries live. A variable so that a
// test can serve its own files.
var releaseURL = "https://dl.k8s.io/release"

// firstRequestTimeout bounds the first request: without internet it must fail
// fast, and the build that follows is the slow path anyway.
const firstRequestTimeout = 3 * time.Second

// checksumError is a downloaded binary that does not match the published
// checksum. Unlike an unreachable server it is never papered over by
// building instead: it means something between us and dl.k8s.io is wrong.
type checksumError struct {
	url, want, got string
}

func (e *checksumError) Error() string {
	return fmt.Sprintf("%s: SHA-256 %s, but the published checksum is %s", e.url, e.got, e.want)
}

var httpClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	},
}

// download fetches the official binaries named into dir, verifying each
// against its published .sha256.
func (s Source) download(ctx context.Context, v Version, dir string, names []string) error {
	base := fmt.Sprintf("%s/%s/bin/%s/%s/", releaseURL, v, runtime.GOOS, runtime.GOARCH)
	sums := make(map[string]string, len(names))
	for i, name := range names {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if i == 0 {
			rctx, cancel = context.WithTimeout(ctx, firstRequestTimeout)
		}
		sum, err := fetchChecksum(rctx, base+name+".sha256")
		cancel()
		if err != nil {
			return err
		}
		sums[name] = sum
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range names {
		logf(s.Log, "downloading %s %s from %s", name, v, releaseURL)
		if err := downloadFile(ctx, base+name, sums[name], filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// fetchChecksum returns the hex SHA-256 published at url.
func fetchChecksum(ctx context.Context, url string) (string, error) {
	body, err := get(ctx, url)
	if err != nil {
		return "", err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, 1024))
	if err != nil {
		return "", fmt.Errorf("%s: %w", url, err)
	}
	// The file is the bare digest; tolerate a "digest  filename" form too.
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return "", fmt.Errorf("%s: empty checksum file", url)
	}
	sum := strings.ToLower(fields[0])
	if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("%s: not a SHA-256 checksum", url)
	}
	return sum, nil
}

// downloadFile writes url to dst if its SHA-256 is want. It writes a
// temporary file next to dst and renames it, so dst is complete or absent.
func downloadFile(ctx context.Context, url, want, dst string) error {
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), body); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", url, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return &checksumError{url: url, want: want, got: got}
	}
	if err := os.Chmod(f.Name(), 0o755); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// get starts a GET of url and fails unless the answer is 200 OK.
func get(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return resp.Body, nil
}
