package lockfile

import (
	"io/fs"
	"testing"
)

func TestLockFileMode(t *testing.T) {
	for _, tc := range []struct{ db, want fs.FileMode }{
		{0o600, 0o600},
		{0o644, 0o600}, // readers of the database get nothing
		{0o664, 0o660},
		{0o666, 0o666},
		{0o620, 0o660},
		{0o602, 0o606},
		{0o444, 0o000},
		{0o755, 0o600},
	} {
		if got := Mode(tc.db); got != tc.want {
			t.Errorf("Mode(%s) = %s, want %s", tc.db, got, tc.want)
		}
	}
}
