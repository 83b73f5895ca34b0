"""Offset each vertex of a model by up to 5 mm at random: the processing
script of the Processes module's model test. Reads the pickled dict the
process prepared (vertexArray, cellCount, idArray) on stdin and writes
{"vertexArray": ...} on stdout."""
import pickle
import sys

import numpy

data = pickle.loads(sys.stdin.buffer.read())
vertices = numpy.asarray(data["vertexArray"], dtype=numpy.float64)
vertices = vertices + 5 * numpy.random.rand(*vertices.shape)
print(f"offset {len(vertices)} vertices of a model with {data['cellCount']} cells", file=sys.stderr)
sys.stdout.buffer.write(pickle.dumps({"vertexArray": vertices}))
