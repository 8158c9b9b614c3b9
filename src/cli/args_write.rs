// Arguments of the commands that write headers: create, change-password, backup-header,
// restore-header. Included by args.rs.
