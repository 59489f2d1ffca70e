"""PhysioNet access: download, local mirror, checksums, WFDB and Challenge-2019 readers."""
