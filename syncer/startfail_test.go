package syncer_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/syncer"
)

// TestFailedStartLeavesNothingRunning: a syncer whose virtual cluster never
// answers fails its start, and leaves no event broadcaster, informer or
// listener running behind it.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	needsHost(t)
	before := goroutinesOf("record.(*eventBroadcasterImpl)", "watch.(*Broadcaster)")
	dead := &rest.Config{Host: "https://127.0.0.1:1", TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	s, err := syncer.New(syncer.Options{Name: "never", Virtual: dead, Host: testHost.RESTConfig()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Start(ctx); err == nil {
		t.Fatal("a syncer of a virtual cluster that never answers started")
	}
	defer hostClient.CoreV1().Namespaces().Delete(context.Background(), syncer.DefaultHostNamespace("never"), metav1.DeleteOptions{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := goroutinesOf("record.(*eventBroadcasterImpl)", "watch.(*Broadcaster)")
		if after <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d event broadcaster goroutines left running after the failed start (%d before)", after, before)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// goroutinesOf counts the goroutines whose stacks mention any of the names.
func goroutinesOf(names ...string) int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, name := range names {
			if strings.Contains(g, name) {
				n++
				break
			}
		}
	}
	return n
}
