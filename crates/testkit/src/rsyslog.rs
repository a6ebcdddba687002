//! A real rsyslog (Debian) receiving syslog over TCP and UDP on loopback. (Skeleton.)
