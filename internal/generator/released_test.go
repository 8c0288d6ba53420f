package generator

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// released are the committed scripts of released versions and the
// hand-written upgrade they came from, with their SHA-256. Databases were
// installed and upgraded from these bytes, and the upgrade tests start from
// them: none may change. Releasing a version (make release-files) adds its
// files here.
var released = map[string]string{
	"pgshadow--0.1.0.sql":                         "817e34ab7af5975b23a5882de91cdc6bec2f57e5fe43f6c5c61453013c940691",
	"pgshadow--0.1.1.sql":                         "024f74ba32cb9e87f2255712add6fcee98915be809a14ba3f8729fd8d27984b0",
	"pgshadow--0.1.0--0.1.1.sql":                  "ae15d12a6491a3cd50ff6f5c2cecbf5896ac21bcb363d719a88d525299cbaab0",
	"sql/updates/pgshadow--0.1.0--0.1.1.sql":      "5949d1d8b3e47d2f45794747cc1673947f6ac5d7f8d972b29f10ea4701e5023b",
	"sql/updates/pgshadow--0.1.0--0.1.1.down.sql": "73cd79040124a1bcc695a2e955f04ad1b93f2c304b5ed4454e3ac5c3ae803bbc",
	"migrations/000001_pgshadow_0_1_0.up.sql":     "5f3868c17b5604108cfc5c14cc97c1c5f0c3efb1a5122415bdcc97e36f899d62",
	"migrations/000001_pgshadow_0_1_0.down.sql":   "4a439cc4d27aafd1d0ab299c659559f1b18e7ef80823e8f4c5ce9877e6b8c410",
	"migrations/000002_pgshadow_0_1_1.up.sql":     "aa0194fe4e004a01aad7568935a168d77c52af08746c9f343ddbf2ff517d6b06",
	"migrations/000002_pgshadow_0_1_1.down.sql":   "3f26963cf655609087b47caaca2554dadecfc674ac974472378492e9a59fc234",
}

func TestReleasedScriptsAreUnchanged(t *testing.T) {
	for name, want := range released {
		data, err := os.ReadFile(filepath.Join("../..", filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("released %s: %v", name, err)
			continue
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("released %s changed (sha256 %s, released as %s): restore it; changes go into a new version's upgrade", name, got, want)
		}
	}
}
