// Package killed is a test process that the CLI tests kill: it creates a
// virtual cluster with the framework and holds it until killed.
package killed

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/vmatrix/vmatrix/framework"
)

func TestHoldsAClusterUntilKilled(t *testing.T) {
	if os.Getenv("VMATRIX_KILLED_TEST") == "" {
		t.Skip("run by the CLI tests, which kill it")
	}
	env, err := framework.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Create(context.Background(), "1.37"); err != nil {
		t.Fatal(err)
	}
	fmt.Println("READY", env.StateDir())
	time.Sleep(10 * time.Minute)
}
