package tlsrpt

import (
	"encoding/json"
	"testing"
)

// Repairs and problems are stored as JSON: rows written before the keys
// were snake_case ("Code", "Detail") still read back.
func TestRepairJSONKeys(t *testing.T) {
	t.Parallel()
	b, _ := json.Marshal([]Repair{{Code: "c", Detail: "d"}})
	if string(b) != `[{"code":"c","detail":"d"}]` {
		t.Errorf("Repair JSON: %s", b)
	}
	var old []Problem
	if err := json.Unmarshal([]byte(`[{"Code":"c","Detail":"d"}]`), &old); err != nil || len(old) != 1 || old[0] != (Problem{"c", "d"}) {
		t.Errorf("old Problem JSON: %+v %v", old, err)
	}
}
