package fsinfo

import (
	"strings"
	"testing"
)

// TestDescribe checks the magic table, including the values magic.h gives
// and a sign-extended 32-bit f_type.
func TestDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		magic         int64
		name          string
		network, fuse bool
	}{
		{0x6969, "nfs", true, false},
		{0x517B, "smbfs", true, false},
		{0xFE534D42, "smb2", true, false},
		{0xFF534D42, "cifs", true, false},
		{int64(int32(-0x00ACB2BE)), "cifs", true, false}, // 0xFF534D42 as a signed 32-bit f_type
		{0x73757245, "coda", true, false},
		{0x5346414F, "afs", true, false},
		{0x6B414653, "afs", true, false},
		{0x01021997, "9p", true, false},
		{0x00C36400, "ceph", true, false},
		{0x01161970, "gfs2", true, false},
		{0x7461636f, "ocfs2", true, false},
		{0x0BD00BD0, "lustre", true, false},
		{0x65735546, "fuse", false, true},
		{0xEF53, "ext4", false, false},
		{0x58465342, "xfs", false, false},
		{0x9123683E, "btrfs", false, false},
		{0x01021994, "tmpfs", false, false},
		{0x794C7630, "overlay", false, false},
		{0x2FC12FC1, "zfs", false, false},
		{0xF2F52010, "f2fs", false, false},
		{0x4d44, "vfat", false, false},
		{0x2011BAB0, "exfat", false, false},
		{0x5346544e, "ntfs", false, false},
		{0xf15f, "ecryptfs", false, false},
		{0x73717368, "squashfs", false, false},
		{0x858458f6, "ramfs", false, false},
		{0x12345678, "unknown", false, false},
		{0, "unknown", false, false},
	}
	for _, tt := range tests {
		name, network, fuse := Describe(tt.magic)
		if name != tt.name || network != tt.network || fuse != tt.fuse {
			t.Errorf("Describe(%#x) = %q, %v, %v; want %q, %v, %v",
				tt.magic, name, network, fuse, tt.name, tt.network, tt.fuse)
		}
	}
}

// mountinfoFixture is a mount table with a space in a mount point, stacked
// mounts on one point, a FUSE sshfs mount and an NFS mount.
const mountinfoFixture = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
40 27 0:45 / /srv/My\040Data rw,relatime shared:20 master:3 - nfs4 fileserver:/export/data rw,vers=4.2
41 27 0:46 /home/joe /mnt/remote rw,nosuid,nodev,relatime - fuse.sshfs joe@host:/home/joe rw,user_id=0
42 27 0:47 / /mnt/stack rw - tmpfs first rw
43 27 0:48 / /mnt/stack rw - tmpfs second rw
44 27 0:49 / /mnt/back\134slash\011tab rw - ext4 /dev/vdb rw
`

// TestParseMountinfo parses the fixture, escapes included.
func TestParseMountinfo(t *testing.T) {
	t.Parallel()
	mounts, err := parseMountinfo(strings.NewReader(mountinfoFixture))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 7 {
		t.Fatalf("got %d mounts, want 7: %+v", len(mounts), mounts)
	}
	nfs := mounts[2]
	if nfs.point != "/srv/My Data" || nfs.fstype != "nfs4" || nfs.source != "fileserver:/export/data" ||
		nfs.major != 0 || nfs.minor != 45 {
		t.Errorf("nfs mount = %+v", nfs)
	}
	if ssh := mounts[3]; ssh.root != "/home/joe" || ssh.point != "/mnt/remote" || ssh.fstype != "fuse.sshfs" {
		t.Errorf("sshfs mount = %+v", ssh)
	}
	if m := mounts[6]; m.point != "/mnt/back\\slash\ttab" || m.minor != 49 {
		t.Errorf("escaped mount = %+v", m)
	}
	if _, err := parseMountinfo(strings.NewReader("1 2 0:3 / /x rw no separator here\n")); err == nil {
		t.Error("a line without the \"-\" separator parsed")
	}
	if _, err := parseMountinfo(strings.NewReader("1 2 03 / /x rw - ext4 /dev/x rw\n")); err == nil {
		t.Error("a device without ':' parsed")
	}
}

// TestFindMountAndRefine picks the mount of various paths in the fixture
// and refines a statfs answer with it.
func TestFindMountAndRefine(t *testing.T) {
	t.Parallel()
	mounts, err := parseMountinfo(strings.NewReader(mountinfoFixture))
	if err != nil {
		t.Fatal(err)
	}
	fuse := Info{Type: "fuse", Magic: 0x65735546, FUSE: true}
	nfs := Info{Type: "nfs", Magic: 0x6969, Network: true}
	ext4 := Info{Type: "ext4", Magic: 0xEF53}
	tests := []struct {
		path      string
		dev       [2]uint32
		statfs    Info
		wantPoint string
		want      Info
	}{
		{"/srv/My Data/app.db", [2]uint32{0, 45}, nfs, "/srv/My Data", nfs},
		{"/srv/My Data", [2]uint32{0, 45}, nfs, "/srv/My Data", nfs},
		{"/srv/My Database/app.db", [2]uint32{254, 0}, ext4, "/", ext4}, // a prefix, not a parent
		{"/mnt/remote/x/app.db", [2]uint32{0, 46}, fuse, "/mnt/remote",
			Info{Type: "fuse.sshfs", Magic: 0x65735546, FUSE: true, Network: true}},
		{"/mnt/stack/app.db", [2]uint32{0, 48}, Info{Type: "tmpfs", Magic: 0x01021994}, "/mnt/stack",
			Info{Type: "tmpfs", Magic: 0x01021994}},
		{"/var/lib/app.db", [2]uint32{254, 0}, ext4, "/", ext4},
		// A device that matches nothing: the longest prefix is used, but
		// only where statfs cannot tell.
		{"/mnt/remote/app.db", [2]uint32{9, 9}, ext4, "/mnt/remote", ext4},
		{"/mnt/remote/app.db", [2]uint32{9, 9}, fuse, "/mnt/remote",
			Info{Type: "fuse.sshfs", Magic: 0x65735546, FUSE: true, Network: true}},
	}
	for _, tt := range tests {
		m, matched, found := findMount(mounts, tt.path, tt.dev)
		if !found || m.point != tt.wantPoint {
			t.Errorf("findMount(%q) = %q (found %v), want %q", tt.path, m.point, found, tt.wantPoint)
			continue
		}
		if got := refine(tt.statfs, m.fstype, matched); got != tt.want {
			t.Errorf("refine(%+v, %q, %v) for %q = %+v, want %+v", tt.statfs, m.fstype, matched, tt.path, got, tt.want)
		}
	}
	// Of two mounts on one point, the later (on top) wins.
	if m, _, _ := findMount(mounts, "/mnt/stack/x", [2]uint32{1, 1}); m.source != "second" {
		t.Errorf("stacked mounts: got %q, want the second", m.source)
	}
}

// TestDescribeType checks mount types, networked FUSE servers among them.
func TestDescribeType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fstype        string
		name          string
		network, fuse bool
	}{
		{"nfs4", "nfs", true, false},
		{"nfs", "nfs", true, false},
		{"cifs", "cifs", true, false},
		{"fuse.sshfs", "fuse.sshfs", true, true},
		{"fuse.glusterfs", "fuse.glusterfs", true, true},
		{"fuse.rclone", "fuse.rclone", true, true},
		{"fuse.encfs", "fuse.encfs", false, true},
		{"fuseblk", "fuseblk", false, true},
		{"virtiofs", "virtiofs", false, true},
		{"ext3", "ext3", false, false},
		{"glusterfs", "glusterfs", true, false},
	}
	for _, tt := range tests {
		name, network, fuse := describeType(tt.fstype)
		if name != tt.name || network != tt.network || fuse != tt.fuse {
			t.Errorf("describeType(%q) = %q, %v, %v; want %q, %v, %v",
				tt.fstype, name, network, fuse, tt.name, tt.network, tt.fuse)
		}
	}
}
