// Command vmatrix-bench measures vmatrix on this machine and writes the figures
// as JSON (make bench writes bench/results.json). See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	var cfg Config
	var out, matrix string
	flag.IntVar(&cfg.Runs, "runs", 5, "iterations of each figure")
	flag.StringVar(&cfg.Version, "version", "1.37", "virtual version of the single-cluster figures")
	flag.StringVar(&matrix, "matrix", "1.35,1.36,1.37", "versions created in parallel")
	flag.DurationVar(&cfg.Idle, "idle", 30*time.Second, "idle time before memory is read")
	flag.IntVar(&cfg.DensityMax, "density", 40, "most clusters in the density figure, the target's count by default (0 skips it)")
	flag.IntVar(&cfg.SyncReplicas, "sync", 100, "replicas of the sync figure's Deployment (0 skips it)")
	flag.IntVar(&cfg.SyncLarge, "sync-large", 1000, "replicas of the large sync figure's Deployment (0 skips it)")
	flag.BoolVar(&cfg.Rerun, "rerun", true, "measure a rerun in reuse mode against a cold run")
	flag.IntVar(&cfg.Inspect, "inspect", 20, "samples of the logs and exec figure (0 skips it)")
	flag.StringVar(&cfg.VMatrix, "vmatrix", "bin/vmatrix", "the vmatrix binary whose clusters the memory figure measures (make bench builds it)")
	flag.StringVar(&out, "out", "bench/results.json", "where to write the JSON")
	flag.Parse()
	cfg.MatrixVersions = strings.Split(matrix, ",")
	cfg.Log = os.Stderr

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	dir, err := os.MkdirTemp("", "vmatrix-bench-")
	if err != nil {
		fail(err)
	}
	cfg.Dir = dir
	res, err := Run(ctx, cfg)
	os.RemoveAll(dir)
	if err != nil {
		fail(err)
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		fail(err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		fail(err)
	}
	if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
		fail(err)
	}
	fmt.Println(Table(res))
	fmt.Printf("written to %s\n", out)
	if len(res.Failed) > 0 {
		fail(fmt.Errorf("%d figure(s) could not be measured; see FAILED above", len(res.Failed)))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "vmatrix-bench: "+err.Error())
	os.Exit(1)
}
