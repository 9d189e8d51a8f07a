"""Imported by the fork server only (searcher.workers puts it in every pool's preload list): the
fork server dies with the main process that started it (see searcher.lifeline). Nothing else may
import this module: importing it arms the signal in the importing process."""

from searcher.lifeline import die_with_parent

die_with_parent()
