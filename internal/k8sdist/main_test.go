package k8sdist

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// helperEnv makes the test binary act as a second vmatrix process instead of
// running tests: cross-process locking can only be shown with real processes.
const helperEnv = "VMATRIX_K8SDIST_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "lock":
		os.Exit(helperLock())
	case "kubernetes":
		os.Exit(helperKubernetes())
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", helperEnv, os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// helperLock takes the lock named by VMATRIX_K8SDIST_TEST_LOCK, says
// "locked" and holds it until its stdin closes.
func helperLock() int {
	unlock, err := lockFile(context.Background(), os.Getenv("VMATRIX_K8SDIST_TEST_LOCK"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	unlock()
	return 0
}

// helperKubernetes acquires VMATRIX_K8SDIST_TEST_VERSION into
// VMATRIX_K8SDIST_TEST_CACHE, logs to stderr and prints the Binaries as JSON.
func helperKubernetes() int {
	v, _, err := ParseVersion(os.Getenv("VMATRIX_K8SDIST_TEST_VERSION"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s := Source{CacheDir: os.Getenv("VMATRIX_K8SDIST_TEST_CACHE"), Log: os.Stderr}
	b, err := s.Kubernetes(context.Background(), v)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(b)
	return 0
}

// helperCommand prepares the test binary as a helper process of kind.
func helperCommand(ctx context.Context, kind string, env ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), helperEnv+"="+kind)
	c.Env = append(c.Env, env...)
	return c
}

// syncBuffer is a Log shared by goroutines of a test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// countLines counts the lines of log that start with prefix.
func countLines(log, prefix string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			n++
		}
	}
	return n
}
