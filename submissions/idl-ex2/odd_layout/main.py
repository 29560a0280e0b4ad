"""Exercise 2: runs every question in order. python main.py"""
import trainers.q1 as q1
import trainers.q2 as q2
import trainers.q3 as q3
import trainers.q4 as q4
import trainers.q5 as q5

autoencoder = q1.run()
classifier = q2.run()
clf_autoencoder = q3.run(classifier, autoencoder)
few_shot_classifier = q4.run()
finetuned_classifier = q5.run(autoencoder)
print("done")
