"""Running a sweep: a checked plan of cells -> one shared pipeline -> images, rows and the report.

Owns the run (`runner`), which run directory holds which experiment (`experiment`), pipeline calls and their order
(`scheduling`), the second passes (`passes`: Hires. fix, img2img), writing images and rows off the generation thread
(`writer`, `pixels`), Ctrl-C and SIGTERM (`signals`), several processes on one machine (`distributed`) and the CPU
thread choice (`cpu_threads`).

May import: planning, report (to build it at the end), rundir, models, axes, files, prompts and the leaves.
"""
