// Package ginkgoreport reads the JSON report a Ginkgo suite writes with
// --json-report: the conformance runner and vmatrix run both read one.
package ginkgoreport

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/onsi/ginkgo/v2/types"
)

// Read returns the suites' reports in the file at path.
func Read(path string) ([]types.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var reports []types.Report
	if err := json.Unmarshal(data, &reports); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return reports, nil
}
