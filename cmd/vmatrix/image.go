package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmatrix/vmatrix/internal/image"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// The in-cluster image, built without a container engine.

func imageCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Build and push the image of the in-cluster mode (one per Kubernetes version)"}
	var version, out, vmatrix string
	build := &cobra.Command{
		Use:   "build --version V [-o FILE] [--vmatrix BINARY]",
		Short: "Write the in-cluster image of Kubernetes V, from the binary cache, as an OCI archive",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if version == "" {
				return usageError{fmt.Errorf("image build needs --version")}
			}
			v, bins, err := image.CachedBinaries(version, k8sdist.DefaultCacheDir())
			if err != nil {
				return err
			}
			if vmatrix == "" {
				if vmatrix, err = os.Executable(); err != nil {
					return err
				}
			}
			created, err := image.SourceDateEpoch()
			if err != nil {
				return err
			}
			if out == "" {
				out = "vmatrix-image-" + v.String() + ".tar"
			}
			start := time.Now()
			img, err := image.Build(image.Options{Version: v, Binaries: bins, VMatrix: vmatrix, Created: created})
			if err != nil {
				return err
			}
			if err := image.WriteFile(out, img, image.Reference(v)); err != nil {
				return err
			}
			digest, err := img.Digest()
			if err != nil {
				return err
			}
			fi, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Printf("%s\t%s\t%s\t%.1f MB\t%s\n", image.Reference(v), digest, out, float64(fi.Size())/1e6, time.Since(start).Round(100*time.Millisecond))
			return nil
		},
	}
	build.Flags().StringVar(&version, "version", "", "Kubernetes version (1.37 takes the newest cached 1.37 release)")
	build.Flags().StringVarP(&out, "output", "o", "", "archive to write (default vmatrix-image-vX.Y.Z.tar)")
	build.Flags().StringVar(&vmatrix, "vmatrix", "", "vmatrix binary of the entrypoint (default: this one; build it with CGO_ENABLED=0 for a static one)")

	var insecure bool
	push := &cobra.Command{
		Use:   "push FILE REF",
		Short: "Push an image archive to a registry (credentials as docker login keeps them)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			digest, err := image.Push(ctx, args[0], args[1], insecure)
			if err != nil {
				return err
			}
			fmt.Printf("%s@%s\n", args[1], digest)
			return nil
		},
	}
	push.Flags().BoolVar(&insecure, "insecure", false, "the registry speaks plain HTTP (localhost needs no flag)")
	cmd.AddCommand(build, push)
	return cmd
}
