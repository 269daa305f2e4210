// Package killed is a test process that the CLI tests kill: it creates a
// virtual cluster with the framework and holds it until killed.
package killed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	vc, err := env.Create(context.Background(), "1.37")
	if err != nil {
		t.Fatal(err)
	}
	// The Environment's state folder holds clusters/NAME.
	fmt.Println("READY", filepath.Dir(filepath.Dir(vc.Info().Dir)))
	time.Sleep(10 * time.Minute)
}
